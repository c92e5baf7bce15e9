import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { errorResponses } from '../schemas/common.js';
import { ContextParams, CreateContextBody } from '../schemas/contexts.js';

const contexts: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/contexts',
    {
      schema: {
        summary: 'Create a context: a new kernel with its own state',
        description:
          'Takes a kernel started ahead of time when one is ready (KERNEL_POOL), moved to `cwd` and indistinguishable from a kernel started there; otherwise starts one. 429 when MAX_CONTEXTS contexts exist (pooled kernels give their slots up).',
        operationId: 'createContext',
        tags: ['contexts'],
        body: CreateContextBody,
        response: { 200: Type.Ref('Context'), ...errorResponses },
      },
      // The reference takes POST /contexts with no body at all as "all defaults".
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const context = await app.contexts.create(request.body.language, request.body.cwd);
      return context.info;
    },
  );

  app.get(
    '/contexts',
    {
      schema: {
        summary: 'List every context, the default ones included',
        operationId: 'listContexts',
        tags: ['contexts'],
        response: { 200: Type.Array(Type.Ref('Context'), { description: 'The contexts' }), ...errorResponses },
      },
    },
    async () => app.contexts.list(),
  );

  app.post(
    '/contexts/:context_id/restart',
    {
      schema: {
        summary: "Restart a context's kernel: all state is wiped, id and cwd stay",
        description:
          'Swaps in a kernel started ahead of time when one is ready (KERNEL_POOL) and shuts the old one down in the background; otherwise restarts the kernel. A running execution ends with ContextRestarted.',
        operationId: 'restartContext',
        tags: ['contexts'],
        params: ContextParams,
        response: { 200: Type.Ref('Context'), ...errorResponses },
      },
    },
    async (request) => (await app.contexts.restart(request.params.context_id)).info,
  );

  app.post(
    '/contexts/:context_id/interrupt',
    {
      schema: {
        summary: 'Interrupt whatever runs in a context',
        operationId: 'interruptContext',
        tags: ['contexts'],
        params: ContextParams,
        response: { 200: Type.Ref('Context'), ...errorResponses },
      },
    },
    async (request) => {
      const context = app.contexts.get(request.params.context_id);
      await context.interrupt();
      return context.info;
    },
  );

  app.delete(
    '/contexts/:context_id',
    {
      schema: {
        summary: 'Shut a context down and forget it',
        operationId: 'deleteContext',
        tags: ['contexts'],
        params: ContextParams,
        response: { 200: Type.Ref('Context'), ...errorResponses },
      },
    },
    async (request) => {
      const context = app.contexts.get(request.params.context_id);
      await app.contexts.delete(context.id);
      // Commands started for the context die with it, as its kernel does (the context_deleted
      // event ends them too; awaited here so that the answer comes once they are gone).
      await app.processes.killOwnedBy({ kind: 'context', id: context.id });
      return context.info;
    },
  );
};

export default fp(contexts, {
  name: 'context-routes',
  encapsulate: true,
  dependencies: ['openapi', 'error-handler', 'auth', 'contexts', 'processes'],
});
