export { Agent, CommandError, type AgentEvent, type ReconfigOutcome, type ReconfigRequest, type SessionInfo, type SessionRecord } from './agent.js';
export { AgentError, DyscoClient, connect, type ConnectOptions, type DataPlaneStats, type SessionRef, type SocketEnds } from './client.js';
export { type AgentConfig, CONFIG_FIELDS, ConfigError, formatMatch, loadConfig, parseMatch, policyFromSpec, validateConfig } from './config.js';
export { ConfigReader, IGNORED_FIELDS, REQUIRED, readConfigFile, shown } from './config-reader.js';
export { KernelTable } from './kernel-table.js';
export { Logger } from './log.js';
export { Metrics } from './metrics.js';
export { ControlServer, type PolicyView } from './server.js';
