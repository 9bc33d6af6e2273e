import type { DhId, ExchangeType, IdType, AuthMethod, NotifyType, PayloadType, ProtocolId, TransformType, TsType } from './constants.js';

/**
 * The decoded, typed model of an IKEv2 message (RFC 7296 §3). Decoders return these with Buffer
 * fields that are VIEWS into the datagram: copy before keeping anything past the call.
 */

export interface IkeHeader {
  spiI: Buffer; // 8 bytes
  spiR: Buffer; // 8 bytes
  nextPayload: PayloadType;
  version: number; // major<<4 | minor
  exchangeType: ExchangeType | number;
  flags: number; // HeaderFlag bits
  messageId: number; // uint32
  length: number;
}

export interface Transform {
  type: TransformType;
  id: number;
  keyLength?: number; // bits, from the Key Length attribute (type 14)
}

export interface Proposal {
  num: number;
  protocol: ProtocolId;
  spi: Buffer; // empty (IKE_SA_INIT), 4 bytes (ESP), 8 bytes (IKE rekey)
  transforms: Transform[];
}

export interface SaPayload {
  type: PayloadType.SA;
  proposals: Proposal[];
}

export interface KePayload {
  type: PayloadType.KE;
  group: DhId | number;
  data: Buffer;
}

export interface NoncePayload {
  type: PayloadType.NONCE;
  nonce: Buffer;
}

export interface IdPayload {
  type: PayloadType.IDi | PayloadType.IDr;
  idType: IdType | number;
  data: Buffer;
}

export interface AuthPayload {
  type: PayloadType.AUTH;
  method: AuthMethod | number;
  data: Buffer;
}

export interface CertPayload {
  type: PayloadType.CERT;
  encoding: number;
  data: Buffer;
}

export interface CertReqPayload {
  type: PayloadType.CERTREQ;
  encoding: number;
  data: Buffer; // concatenated 20-byte SHA-1 SPKI hashes for encoding 4
}

export interface NotifyPayload {
  type: PayloadType.N;
  protocol: number; // 0 for IKE-wide notifies
  spi: Buffer; // empty when SPI size 0
  notifyType: NotifyType | number;
  data: Buffer;
}

export interface DeletePayload {
  type: PayloadType.D;
  protocol: ProtocolId;
  spiSize: number; // 0 for IKE, 4 for ESP
  spis: Buffer[];
}

export interface VendorPayload {
  type: PayloadType.V;
  data: Buffer;
}

export interface TrafficSelector {
  tsType: TsType;
  ipProtocol: number; // 0 = any
  startPort: number;
  endPort: number;
  startAddr: Buffer; // 4 or 16 bytes
  endAddr: Buffer;
}

export interface TsPayload {
  type: PayloadType.TSi | PayloadType.TSr;
  selectors: TrafficSelector[];
}

export interface CpAttribute {
  type: number;
  value: Buffer;
}

export interface CpPayload {
  type: PayloadType.CP;
  cfgType: number; // 1 REQUEST, 2 REPLY, 3 SET, 4 ACK
  attributes: CpAttribute[];
}

/** A payload we do not understand and that is not critical: kept so it can be skipped/logged. */
export interface UnknownPayload {
  type: number;
  critical: boolean;
  data: Buffer;
}

export type Payload =
  | SaPayload
  | KePayload
  | NoncePayload
  | IdPayload
  | AuthPayload
  | CertPayload
  | CertReqPayload
  | NotifyPayload
  | DeletePayload
  | VendorPayload
  | TsPayload
  | CpPayload;

/** A whole decoded (and, if it had an SK payload, decrypted) message. */
export interface IkeMessage {
  header: IkeHeader;
  /** payloads in wire order; for an encrypted message these are the inner payloads */
  payloads: Payload[];
  /** true when the payloads came from inside an SK payload */
  encrypted: boolean;
  /** unknown non-critical payloads that were skipped */
  skipped: UnknownPayload[];
}
