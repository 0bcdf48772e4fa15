export { startPlatform, SERVICES, embeddedConfigSpec, type Platform, type PlatformOptions } from './platform';
export { configurationReference, openApiDocuments } from './docs';
