// Bounds of a PROXY protocol v2 header (HAProxy's specification §2.2), shared by the parser
// (smtp/proxy-protocol.ts) and the config schema (listen[].proxyProtocol.maxHeaderSize).

/** v2 fixed part: signature, ver_cmd, fam, len. */
export const V2_FIXED = 16;
/** Default bound on a whole v2 header (fixed part, addresses, TLVs); configurable. */
export const DEFAULT_MAX_LENGTH = 1024;
/** The smallest bound that still admits every address block (16 + 216 for AF_UNIX, §2.2). */
export const MIN_MAX_LENGTH = V2_FIXED + 216;
