export { startPlatform, SERVICES, embeddedConfigSpec, type Platform, type PlatformOptions } from './platform';
