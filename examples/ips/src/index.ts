/**
 * The IPS example's library: the pure parts (multi-pattern matching,
 * stream reassembly, blacklists, packet decoding, configuration) and the
 * engine, which the command in `main.ts` wires to libpcap, nftables and the
 * Dysco agent.
 */
export { AhoCorasick, type AhoCorasickOptions, type Match, PatternError, StreamScanner, naiveFindAll } from './aho-corasick.js';
export { type Piece, type PushOptions, Reassembler, type ReassemblerOptions, type ReassemblyStats } from './reassembly.js';
export { Blacklist, BlacklistError, type BlacklistHit, type BlacklistSpec, type PortRange, type Prefix, parsePortRange, parsePrefix, prefixContains } from './blacklist.js';
export { type LinkType, type TcpSegment, decodeTcp } from './packet.js';
export { ConfigError, DEFAULTS, type IpsConfig, type Term, parseConfig } from './config.js';
export { type Enforcer, NftEnforcer, NftError, type NftOptions, nft, tableScript } from './nft.js';
export { type AgentApi, type Direction, Ips, type IpsOptions, type IpsStats, type Verdict } from './ips.js';
export { Log, type Level, type LogFields } from './log.js';
