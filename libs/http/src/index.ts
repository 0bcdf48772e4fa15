/// <reference types="@fastify/swagger" preserve="true" />
// The reference above carries @fastify/swagger's route-schema fields (tags, summary, hide) to every user of this library.
export * from './app';
export * from './errors';
export * from './redact';
export * from './lifecycle';
export * from './schemas';
