// RFC 7296 §3 and the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registry.
// Names keep the RFC spelling so they grep against the RFC.

export const IKE_HEADER_SIZE = 28;
export const IKE_VERSION = 0x20;
// UDP ports 500/4500 and the non-ESP marker: src/common/ipsec-udp.ts

export enum ExchangeType {
  IKE_SA_INIT = 34,
  IKE_AUTH = 35,
  CREATE_CHILD_SA = 36,
  INFORMATIONAL = 37,
}

export enum HeaderFlag {
  I = 0x08,
  V = 0x10,
  R = 0x20,
}

export enum PayloadType {
  NONE = 0,
  SA = 33,
  KE = 34,
  IDi = 35,
  IDr = 36,
  CERT = 37,
  CERTREQ = 38,
  AUTH = 39,
  NONCE = 40,
  N = 41,
  D = 42,
  V = 43,
  TSi = 44,
  TSr = 45,
  SK = 46,
  CP = 47,
  EAP = 48,
  SKF = 53,
}

export enum ProtocolId {
  IKE = 1,
  AH = 2,
  ESP = 3,
}

export enum TransformType {
  ENCR = 1,
  PRF = 2,
  INTEG = 3,
  DH = 4,
  ESN = 5,
}

export enum EncrId {
  ENCR_3DES = 3,
  ENCR_NULL = 11,
  ENCR_AES_CBC = 12,
  ENCR_AES_CTR = 13,
  ENCR_AES_GCM_8 = 18,
  ENCR_AES_GCM_12 = 19,
  ENCR_AES_GCM_16 = 20,
  ENCR_CHACHA20_POLY1305 = 28,
}

export enum PrfId {
  PRF_HMAC_SHA1 = 2,
  PRF_HMAC_SHA2_256 = 5,
  PRF_HMAC_SHA2_384 = 6,
  PRF_HMAC_SHA2_512 = 7,
}

export enum IntegId {
  NONE = 0,
  AUTH_HMAC_SHA1_96 = 2,
  AUTH_HMAC_SHA2_256_128 = 12,
  AUTH_HMAC_SHA2_384_192 = 13,
  AUTH_HMAC_SHA2_512_256 = 14,
}

export enum DhId {
  NONE = 0,
  MODP_2048 = 14,
  MODP_3072 = 15,
  MODP_4096 = 16,
  ECP_256 = 19,
  ECP_384 = 20,
  ECP_521 = 21,
  CURVE25519 = 31,
  CURVE448 = 32,
}

export enum EsnId {
  NO_ESN = 0,
  ESN = 1,
}

export const ATTR_KEY_LENGTH = 14;

export enum IdType {
  ID_IPV4_ADDR = 1,
  ID_FQDN = 2,
  ID_RFC822_ADDR = 3,
  ID_IPV6_ADDR = 5,
  ID_DER_ASN1_DN = 9,
  ID_DER_ASN1_GN = 10,
  ID_KEY_ID = 11,
}

export enum AuthMethod {
  RSA_SIG = 1,
  SHARED_KEY_MIC = 2,
  ECDSA_SHA256_P256 = 9,
  ECDSA_SHA384_P384 = 10,
  ECDSA_SHA512_P521 = 11,
  DIGITAL_SIGNATURE = 14,
}

export enum CertEncoding {
  X509_SIGNATURE = 4,
}

export enum TsType {
  TS_IPV4_ADDR_RANGE = 7,
  TS_IPV6_ADDR_RANGE = 8,
}

export enum NotifyType {
  // errors (< 16384)
  UNSUPPORTED_CRITICAL_PAYLOAD = 1,
  INVALID_IKE_SPI = 4,
  INVALID_MAJOR_VERSION = 5,
  INVALID_SYNTAX = 7,
  INVALID_MESSAGE_ID = 9,
  INVALID_SPI = 11,
  NO_PROPOSAL_CHOSEN = 14,
  INVALID_KE_PAYLOAD = 17,
  AUTHENTICATION_FAILED = 24,
  SINGLE_PAIR_REQUIRED = 34,
  NO_ADDITIONAL_SAS = 35,
  INTERNAL_ADDRESS_FAILURE = 36,
  FAILED_CP_REQUIRED = 37,
  TS_UNACCEPTABLE = 38,
  INVALID_SELECTORS = 39,
  TEMPORARY_FAILURE = 43,
  CHILD_SA_NOT_FOUND = 44,
  // status (>= 16384)
  INITIAL_CONTACT = 16384,
  SET_WINDOW_SIZE = 16385,
  ADDITIONAL_TS_POSSIBLE = 16386,
  IPCOMP_SUPPORTED = 16387,
  NAT_DETECTION_SOURCE_IP = 16388,
  NAT_DETECTION_DESTINATION_IP = 16389,
  COOKIE = 16390,
  USE_TRANSPORT_MODE = 16391,
  HTTP_CERT_LOOKUP_SUPPORTED = 16392,
  REKEY_SA = 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
  NON_FIRST_FRAGMENTS_ALSO = 16395,
  MOBIKE_SUPPORTED = 16396,
  MULTIPLE_AUTH_SUPPORTED = 16404,
  REDIRECT_SUPPORTED = 16406,
  IKEV2_FRAGMENTATION_SUPPORTED = 16430,
  SIGNATURE_HASH_ALGORITHMS = 16431,
}

export const NOTIFY_ERROR_MAX = 16383;
