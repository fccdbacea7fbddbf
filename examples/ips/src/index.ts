/**
 * The IPS example's library: the pure parts (multi-pattern matching,
 * stream reassembly, blacklists, packet decoding, configuration), the
 * engine, and the libpcap capture, which the command in `main.ts` wires
 * together with nftables and the Dysco agent.
 */
import { fileURLToPath } from 'node:url';

export { AhoCorasick, type AhoCorasickOptions, type Match, PatternError, StreamScanner, naiveFindAll } from './aho-corasick.js';
export { type Piece, type PushOptions, Reassembler, type ReassemblerOptions, type ReassemblyStats } from './reassembly.js';
export { Blacklist, BlacklistError, type BlacklistHit, type BlacklistSpec, type PortRange, type Prefix, parsePortRange, parsePrefix, prefixContains } from './blacklist.js';
export { type LinkType, type TcpSegment, decodeTcp } from './packet.js';
export { ConfigError, DEFAULTS, type IpsConfig, type Term, parseConfig } from './config.js';
export { type Enforcer, NftEnforcer, NftError, type NftOptions, nft, tableScript } from './nft.js';
export { type AgentApi, type Direction, Ips, type IpsOptions, type IpsStats, type Verdict } from './ips.js';
export { Log, type Level, type LogFields } from './log.js';
export { Capture, type CaptureOptions, type CaptureStats } from './capture.js';

/** The IPS's command (`src/main.ts`), to run it as a process: `node IPS_COMMAND --socket … --address … --config …`. */
export const IPS_COMMAND = fileURLToPath(new URL('./main.js', import.meta.url));
