export * from './topics';
export * from './schemas';
export * from './types';
export * from './envelope';
export * from './secrets';
