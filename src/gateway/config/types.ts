import type { Out } from './field-table.js';
import type {
  API, CONFIG, CUSTOMER_GATEWAY, DATA_CIPHERS, DATA_PLANE, DPD, ESP_POLICY, GATEWAY, IKE_POLICY, LOG_LEVELS,
  SSL_PROTOCOLS, START_ACTIONS, TUN, VPN_CONNECTION, VPN_SERVER, USER, USER_GROUP, ACCESS_POLICY, ENDPOINT_SERVICE, ENDPOINT, GATEWAY_ENDPOINTS, GATEWAY_DNS,
} from './sections.js';

/**
 * The validated, frozen configuration: built once by `parseConfig`/`loadConfigFile`, then shared
 * read-only (config objects; runtime objects refer to them and never change them). Every type here
 * is derived from the field tables in sections.ts, where each key, its bounds and its meaning are
 * written once. Durations are whole seconds (`...Sec`), prefixes keep their original text next to
 * the parsed form, secrets are `Secret` values.
 */
export type GatewayConfig = {
  /** Where the config came from (file path or a label), for messages. */
  readonly source: string;
} & Out<typeof CONFIG>;

export type { AddressSpec, PrefixSpec } from './field-table.js';
export { DATA_CIPHERS } from './sections.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
export type StartAction = (typeof START_ACTIONS)[number];
export type SslProtocol = (typeof SSL_PROTOCOLS)[number];
export type DataCipher = (typeof DATA_CIPHERS)[number];

export type TunConfig = Out<typeof TUN>;
export type DataPlaneConfig = Out<typeof DATA_PLANE>;
export type GatewaySection = Out<typeof GATEWAY>;
export type ApiConfig = Out<typeof API>;
export type CustomerGatewayConfig = Out<typeof CUSTOMER_GATEWAY>;
export type IkePolicyConfig = Out<typeof IKE_POLICY>;
export type EspPolicyConfig = Out<typeof ESP_POLICY>;
export type DpdConfig = Out<typeof DPD>;
export type VpnConnectionConfig = Out<typeof VPN_CONNECTION>;
export type VpnServerConfig = Out<typeof VPN_SERVER>;
export type EndpointServiceConfig = Out<typeof ENDPOINT_SERVICE>;
export type EndpointConfig = Out<typeof ENDPOINT>;
export type GatewayEndpointsConfig = Out<typeof GATEWAY_ENDPOINTS>;
export type GatewayDnsConfig = Out<typeof GATEWAY_DNS>;
export type { WhitelistEntry } from './sections.js';
export type UserEntryConfig = Out<typeof USER>;
export type UserGroupConfig = Out<typeof USER_GROUP>;
export type AccessPolicyConfig = Out<typeof ACCESS_POLICY>;
export type { AclProtocol, PolicyDestination } from './sections.js';
