import { Type } from 'typebox';
import { errorCatalog } from '../errors.js';

/** The body of every 4xx/5xx answer. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer({ description: 'HTTP status code' }),
    // The closed set of errors.ts, so that clients (and their generators) know every code.
    code: Type.Unsafe<string>({
      type: 'string',
      enum: errorCatalog().map(({ code }) => code),
      description: 'Stable machine-readable error code: match on it (docs/api.md, "Errors", says what each means)',
    }),
    error: Type.String({ description: 'HTTP status text' }),
    message: Type.String({ description: 'What was wrong, for a person' }),
  },
  { $id: 'ErrorResponse', description: 'An error' },
);

export const errorResponses = {
  400: Type.Ref('ErrorResponse', { description: 'The request is invalid' }),
  401: Type.Ref('ErrorResponse', { description: 'The access token is missing or wrong' }),
  403: Type.Ref('ErrorResponse', {
    description: "The request's Origin or Host is not allowed, or the server has not been claimed yet (AUTH_MODE=claim)",
  }),
  404: Type.Ref('ErrorResponse', { description: 'No such context, file or route' }),
  429: Type.Ref('ErrorResponse', { description: 'Too many executions are waiting for the context' }),
  500: Type.Ref('ErrorResponse', { description: 'An unexpected server error' }),
  502: Type.Ref('ErrorResponse', { description: 'The kernel failed' }),
  503: Type.Ref('ErrorResponse', { description: 'Jupyter is unavailable, or the server is shutting down' }),
} as const;
