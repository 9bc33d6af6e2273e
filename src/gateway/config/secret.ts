import { inspect } from 'node:util';

/**
 * A secret from the config (PSK, password). It prints as "(hidden)" everywhere: JSON.stringify,
 * util.inspect, template strings and pino all see the mask; only `reveal()` gives the value.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
    Object.freeze(this);
  }
  reveal(): string {
    return this.#value;
  }
  get length(): number {
    return this.#value.length;
  }
  toJSON(): string {
    return '(hidden)';
  }
  toString(): string {
    return '(hidden)';
  }
  [inspect.custom](): string {
    return 'Secret((hidden))';
  }
}
