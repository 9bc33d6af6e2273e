export { parseConfig, loadConfigFile, configFromDocument, readConfigDocument, type LoadOptions } from './load.js';
export { parseDurationSec, formatDuration } from './duration.js';
export { Secret } from './secret.js';
export * from './types.js';
export { configJsonSchema, configEntryJsonSchema, type JsonSchema } from './json-schema.js';
export {
  DEFAULT_IKE_PROPOSALS, DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_LIFETIME_SEC, DEFAULT_ESP_LIFETIME_SEC,
  DEFAULT_REPLAY_WINDOW, DEFAULT_TUN_NAME, DEFAULT_TUN_MTU, DEFAULT_SSL_PORT, DEFAULT_MAX_CONNECTIONS,
  MAX_DATA_PLANE_QUEUES, readEntry, type SectionName,
} from './sections.js';
