import { Code } from '@connectrpc/connect';
import { getSignature } from 'e2b';
import { describe, expect, it } from 'vitest';
import { FILE_ERROR_CODES } from '../../server/sandbox-files/types.js';
import { connectCodeOf } from '../../server/transports/connect/filesystem-service.js';
import { httpStatusOf, signatureIsValid, uploadTarget } from '../../server/transports/http/envd-files.js';

describe('the envd doors’ answers to the host’s errors', () => {
  it('are envd’s Connect codes (the SDK’s FileNotFoundError is not_found)', () => {
    const codes = Object.fromEntries(FILE_ERROR_CODES.map((code) => [code, connectCodeOf(code)]));
    expect(codes).toMatchObject({
      ENOENT: Code.NotFound,
      EEXIST: Code.AlreadyExists,
      EACCES: Code.PermissionDenied,
      EPERM: Code.PermissionDenied,
      ENOTDIR: Code.InvalidArgument,
      EINVAL: Code.InvalidArgument,
      EISDIR: Code.InvalidArgument,
      ELIMIT: Code.ResourceExhausted,
      EIO: Code.Internal,
      ENOSPC: Code.Internal,
    });
  });

  it('are HTTP statuses for /files: 404, 403, 400, 429, 507, else 500', () => {
    expect([httpStatusOf('ENOENT'), httpStatusOf('EACCES'), httpStatusOf('EISDIR'), httpStatusOf('ELIMIT')]).toEqual([404, 403, 400, 429]);
    expect([httpStatusOf('ENOSPC'), httpStatusOf('EIO')]).toEqual([507, 500]);
  });
});

describe('uploadTarget', () => {
  it.each(['/home/user/a/../b', '../x', 'a/..', 'a\0b', ''])('refuses %j', (name) => {
    expect(() => uploadTarget(name, 'path')).toThrow(/path/);
  });

  it.each(['/home/user/a..b', '..hidden', 'a/.../b', '/tmp/x'])('accepts %j', (name) => {
    expect(uploadTarget(name, 'path')).toBe(name);
  });
});

describe('signatureIsValid', () => {
  const token = 'a-token-of-sufficient-length-0123';

  it('accepts what e2b’s getSignature computes, for its path, operation and user only', async () => {
    const { signature } = await getSignature({ path: '/home/user/f', operation: 'read', user: 'user', envdAccessToken: token });
    expect(signatureIsValid({ path: '/home/user/f', operation: 'read', username: 'user', signature }, token)).toBe(true);
    expect(signatureIsValid({ path: '/home/user/g', operation: 'read', username: 'user', signature }, token)).toBe(false);
    expect(signatureIsValid({ path: '/home/user/f', operation: 'write', username: 'user', signature }, token)).toBe(false);
    expect(signatureIsValid({ path: '/home/user/f', operation: 'read', username: '', signature }, token)).toBe(false);
    expect(signatureIsValid({ path: '/home/user/f', operation: 'read', username: 'user', signature }, `${token}x`)).toBe(false);
  });

  it('refuses a signature past its expiration, and an expiration that was changed', async () => {
    const { signature, expiration } = await getSignature({
      path: 'f',
      operation: 'write',
      user: undefined,
      expirationInSeconds: 60,
      envdAccessToken: token,
    });
    const request = { path: 'f', operation: 'write' as const, username: '', signature, expiration: String(expiration) };
    expect(signatureIsValid(request, token)).toBe(true);
    expect(signatureIsValid(request, token, expiration! + 1)).toBe(false);
    expect(signatureIsValid({ ...request, expiration: String(expiration! + 3600) }, token)).toBe(false);
    expect(signatureIsValid({ ...request, expiration: 'soon' }, token)).toBe(false);
  });
});
