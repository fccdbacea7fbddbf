import { fileURLToPath } from 'node:url';

export { HttpParser, HttpError, serializeHead, encodeChunk, encodeLastChunk, encodeChunked, header, headerValues, tokens, hasToken, keepAlive, contentLength, withoutHeaders } from './http.js';
export type { Head, Header, Headers, HttpEvent, BodyKind, RequestHead, ResponseHead, ParserLimits } from './http.js';
export { HttpCache, cacheKey, storability, requestAllowsCached, parseCacheControl, etagMatches } from './cache.js';
export type { CacheEntry, CacheOptions, CacheStats, Lookup, Storability } from './cache.js';
export { UrlMatcher, normalizeUrl, normalizeHost, splitHostPort } from './filter.js';
export type { UrlRules, UrlParts } from './filter.js';
export { parseConfig, ConfigError, DEFAULTS } from './config.js';
export type { ProxyConfig } from './config.js';
export { WebProxy } from './proxy.js';
export type { DyscoApi, ProxyOptions, RequestRecord, CacheStatus } from './proxy.js';
export { startOrigin, pattern, PAGE, CHUNKED_BODY, CHUNKED_PARTS } from './origin.js';
export type { Origin } from './origin.js';

/** The proxy's command (`src/main.ts`), to run it as a process: `node PROXY_COMMAND --socket … --listen … --config …`. */
export const PROXY_COMMAND = fileURLToPath(new URL('./main.js', import.meta.url));
/** The origin server's command (`src/origin.ts`): `node ORIGIN_COMMAND --port 80` prints `listening 80`, then a JSON line per request. */
export const ORIGIN_COMMAND = fileURLToPath(new URL('./origin.js', import.meta.url));
