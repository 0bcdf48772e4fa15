export * from './config';
export * from './service';
export * from './access';
export * from './main';
