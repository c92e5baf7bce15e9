import { describe, expect, it } from 'vitest';
import { createContext, deleteContext, errorsOf, execute, interruptAfterStart, json, stdoutOf } from '../helpers/api.js';

describe('R, the second language', () => {
  it('runs R code in the default R context, keeping state', async () => {
    await execute({ language: 'r', code: 'kept <- 21' });
    const events = await execute({ language: 'r', code: 'cat(kept * 2, "\\n")' });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe('42 \n');
    const contexts = (await json<Array<{ language: string }>>('GET', '/contexts')).body;
    expect(contexts.some((context) => context.language === 'r')).toBe(true);
  });

  it('creates R contexts and reports R errors', async () => {
    const context = await createContext({ language: 'r' });
    try {
      expect(context.language).toBe('r');
      const [error] = errorsOf(await execute({ context_id: context.id, code: 'stop("broken")' }));
      expect(error?.value).toMatch(/broken/);
    } finally {
      await deleteContext(context.id);
    }
  });

  it('survives an interrupt the instant R code starts, its state kept', async () => {
    // R quits on a SIGINT that arrives between requests: the interrupt waits for the kernel to
    // take the request.
    const context = await createContext({ language: 'r' });
    try {
      const rounds: string[] = [];
      for (let round = 0; round < 12; round++) {
        await execute({ context_id: context.id, code: `state <- ${round}` });
        const errors = await interruptAfterStart(context.id, 'Sys.sleep(30)', round % 3);
        const state = stdoutOf(await execute({ context_id: context.id, code: 'cat(state)' }));
        rounds.push(`${round}: ${errors.join(',') || 'no error'} state=${state}`);
      }
      expect(rounds.filter((line, round) => line !== `${round}: no error state=${round}`)).toEqual([]);
    } finally {
      await deleteContext(context.id);
    }
  });

  it('applies env_vars in R for one execution, hostile values intact', async () => {
    const value = `it's "quoted" \\ $(id) ünï`;
    const during = await execute({ language: 'r', code: 'cat(Sys.getenv("R_SECRET"))', env_vars: { R_SECRET: value } });
    expect(stdoutOf(during)).toBe(value);
    const after = await execute({ language: 'r', code: 'cat(is.na(Sys.getenv("R_SECRET", unset = NA)))' });
    expect(stdoutOf(after)).toBe('TRUE');
  });
});
