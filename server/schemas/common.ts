import { Type } from 'typebox';

/** The body of every 4xx/5xx answer. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer({ description: 'HTTP status code' }),
    code: Type.String({ description: 'Stable machine-readable error code, e.g. ERR_CONTEXT_NOT_FOUND' }),
    error: Type.String({ description: 'HTTP status text' }),
    message: Type.String({ description: 'What was wrong, for a person' }),
  },
  { $id: 'ErrorResponse', description: 'An error' },
);

export const errorResponses = {
  400: Type.Ref('ErrorResponse'),
  401: Type.Ref('ErrorResponse'),
  403: Type.Ref('ErrorResponse'),
  404: Type.Ref('ErrorResponse'),
  429: Type.Ref('ErrorResponse'),
  500: Type.Ref('ErrorResponse'),
  502: Type.Ref('ErrorResponse'),
  503: Type.Ref('ErrorResponse'),
} as const;
