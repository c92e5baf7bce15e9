import createError from '@fastify/error';
import { describe, expect, it } from 'vitest';
import { ApiError, ContextNotFoundError, errorCatalog, InternalError, JupyterUnavailableError, KernelError } from '../../server/errors.js';
import { toFailureEvent } from '../../server/runs/failures.js';
import { contractErrorOf, toContractError } from '../../server/transports/errors.js';

const request = { id: 'req-1', headers: {} };

describe('the coded errors', () => {
  it('are one class each, under one base, with the code and status of the contract', () => {
    const error = new ContextNotFoundError('abc');
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toBeInstanceOf(ContextNotFoundError);
    expect(error).not.toBeInstanceOf(KernelError);
    expect(error).toMatchObject({ code: 'ERR_CONTEXT_NOT_FOUND', statusCode: 404, message: 'Context abc not found' });
    expect(error.toBody()).toEqual({
      statusCode: 404,
      code: 'ERR_CONTEXT_NOT_FOUND',
      error: 'Not Found',
      message: 'Context abc not found',
    });
    expect(String(error.stack)).toMatch(/^ERR_CONTEXT_NOT_FOUND: Context abc not found/);
  });

  it('keep a cause out of the message', () => {
    const cause = new Error('ECONNREFUSED');
    const error = new JupyterUnavailableError('connection refused', { cause });
    expect(error.message).toBe('Jupyter Server is unavailable: connection refused');
    expect(error.cause).toBe(cause);
  });

  it('are found by code for the codes of the contract only', () => {
    for (const { code, statusCode } of errorCatalog()) expect({ ...ApiError.classOf(code) }).toEqual({ code, statusCode });
    expect(ApiError.classOf('ERR_INVALID_ARG_TYPE')).toBeUndefined();
  });
});

describe('the one mapping of errors to answers', () => {
  it('passes the coded errors as they are', () => {
    const error = new ContextNotFoundError('abc');
    expect(contractErrorOf(error)).toBe(error);
    expect(toContractError(error, request)).toBe(error);
  });

  it("takes no error for the contract's because its code starts with ERR_", () => {
    // Node's own errors carry codes of that shape: their message says things of the server's internals.
    const nodeError = Object.assign(new TypeError('The "path" argument must be of type string'), {
      code: 'ERR_INVALID_ARG_TYPE',
      statusCode: 400,
    });
    expect(contractErrorOf(nodeError)).toBeUndefined();
    const lookalike = Object.assign(new Error('Context abc not found'), { code: 'ERR_CONTEXT_NOT_FOUND', statusCode: 404 });
    expect(contractErrorOf(lookalike)).toBeUndefined();
    const answer = toContractError(nodeError, request);
    expect(answer).toBeInstanceOf(InternalError);
    expect(answer.toBody()).toEqual({
      statusCode: 500,
      code: 'ERR_INTERNAL',
      error: 'Internal Server Error',
      message: 'Internal server error (request id req-1)',
    });
  });

  it("gives an error made elsewhere with a contract code the contract's status", () => {
    const Elsewhere = createError('ERR_CONTEXT_NOT_FOUND', 'Context %s not found', 418);
    const answer = contractErrorOf(new Elsewhere('x'));
    expect(answer).toBeInstanceOf(ContextNotFoundError);
    expect(answer?.toBody()).toEqual({
      statusCode: 404,
      code: 'ERR_CONTEXT_NOT_FOUND',
      error: 'Not Found',
      message: 'Context x not found',
    });
  });

  it('names the failure event of a coded error by its class, not its code', () => {
    expect(toFailureEvent(new KernelError('gone'))).toMatchObject({ name: 'KernelLost', value: 'Kernel error: gone' });
    expect(toFailureEvent(new ContextNotFoundError('abc'))).toMatchObject({ name: 'ContextDeleted' });
    expect(toFailureEvent(Object.assign(new Error('Kernel error: x'), { code: 'ERR_KERNEL' }))).toMatchObject({ name: 'ExecutionError' });
  });
});
