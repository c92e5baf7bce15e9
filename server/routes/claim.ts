import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';

const ClaimResponse = Type.Object(
  {
    token: Type.String({
      description: 'The access token (256 random bits, base64url): send it as Authorization: Bearer <token> or X-Access-Token: <token>',
    }),
  },
  { description: 'The one token this server will ever accept' },
);

/**
 * `POST /claim` (AUTH_MODE=claim only): the first call gets the access token, every later one
 * a 404 as if the route did not exist. Needs no credentials; the auth plugin lets it through.
 */
const claim: FastifyPluginAsyncTypebox = async (app) => {
  // Nothing is read from the body, so none is refused: `curl -X POST`, `-d ''`, `{}` and an
  // empty body labelled application/json all claim alike.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 4096 }, (_request, _body, done) => done(null, undefined));

  app.post(
    '/claim',
    {
      schema: {
        summary: 'Claim this server: the first call gets its access token, later calls a 404',
        description:
          'Exists only with AUTH_MODE=claim. Needs no credentials; until it succeeds, every other route but the health checks answers 403.',
        operationId: 'claim',
        tags: ['access'],
        security: [],
        response: {
          200: ClaimResponse,
          404: Type.Ref('ErrorResponse', { description: 'The server was claimed already' }),
        },
      },
    },
    async (request, reply) => {
      const token = app.access.claim();
      if (token === undefined) {
        request.log.warn('claim refused: this server was claimed already');
        return reply.callNotFound();
      }
      request.log.info('server claimed');
      // The token must not linger in a cache between here and the client.
      return reply.header('cache-control', 'no-store').send({ token });
    },
  );
};

export default fp(claim, { name: 'claim-routes', encapsulate: true, dependencies: ['openapi', 'error-handler', 'auth'] });
