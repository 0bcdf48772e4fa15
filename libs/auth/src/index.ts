export * from './principal';
export * from './jwks';
export * from './plugin';
export { authConfigSpec } from './config';
