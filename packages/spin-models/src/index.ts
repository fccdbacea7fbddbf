export * from './verdict.js';
export * from './runner.js';
