import { Sandbox, type Execution, type Result } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portIsFree } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * Charts as e2b's SDK reads them: `result.chart` next to `result.png` for a matplotlib figure.
 * The SDK's debug mode talks to localhost:49999 only (see e2b-sdk.test.ts); this file starts its
 * own server there and is skipped, with a warning, only when something else holds the port.
 */
const SDK_PORT = 49999;

const portFree = await portIsFree(SDK_PORT);
if (!portFree) {
  console.warn(
    `e2b SDK chart tests SKIPPED: port ${SDK_PORT} is taken by another process, and the SDK's debug mode talks to that port only`,
  );
}

/** The figure's result: the one with a PNG. Asserts the run was clean. */
function figureResult(execution: Execution): Result {
  expect(execution.error).toBeUndefined();
  expect(execution.logs.stderr).toEqual([]);
  const figures = execution.results.filter((result) => result.png !== undefined);
  expect(figures).toHaveLength(1);
  return figures[0]!;
}

// Only these fields are compared: what matplotlib picks for ticks is its own business.
function chartOf(execution: Execution): Record<string, unknown> {
  const chart = figureResult(execution).chart as unknown as Record<string, unknown> | undefined;
  expect(chart).toBeDefined();
  return chart!;
}

describe.skipIf(!portFree)(`charts through the e2b SDK in debug mode, on localhost:${SDK_PORT}`, () => {
  let server: StartedServer;
  let sandbox: Sandbox;

  beforeAll(async () => {
    server = await startServer({}, { port: SDK_PORT, host: 'localhost' });
    sandbox = await Sandbox.create({ debug: true });
    await sandbox.runCode('import matplotlib.pyplot as plt\nimport datetime');
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('a line chart: title, labels with their units, scales, ticks and every point of every line', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'plt.plot([0, 1, 2], [0, 1, 4], label="squares")',
          'plt.plot([0, 1, 2], [1, float("nan"), 3])',
          'plt.xlabel("Time (s)")',
          'plt.ylabel("Amplitude [Hz]")',
          'plt.title("Signals")',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toMatchObject({
      type: 'line',
      title: 'Signals',
      x_label: 'Time (s)',
      y_label: 'Amplitude [Hz]',
      x_unit: 's',
      y_unit: 'Hz',
      x_scale: 'linear',
      y_scale: 'linear',
      elements: [
        {
          label: 'squares',
          points: [
            [0, 0],
            [1, 1],
            [2, 4],
          ],
        },
        {
          label: 'Line 1',
          points: [
            [0, 1],
            [1, null],
            [2, 3],
          ],
        },
      ],
    });
    const xTicks = chart.x_ticks as number[];
    expect(xTicks.length).toBeGreaterThan(1);
    expect(xTicks.every((tick) => typeof tick === 'number')).toBe(true);
    expect(chart.x_tick_labels).toHaveLength(xTicks.length);
  });

  it('a line over dates: ISO 8601 points and ticks, a datetime scale', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        'days = [datetime.date(2026, 1, 1) + datetime.timedelta(days=i) for i in range(3)]\nplt.plot(days, [3, 1, 2])\nplt.show()',
      ),
    );
    expect(chart).toMatchObject({
      type: 'line',
      x_scale: 'datetime',
      elements: [
        {
          points: [
            ['2026-01-01', 3],
            ['2026-01-02', 1],
            ['2026-01-03', 2],
          ],
        },
      ],
    });
    expect((chart.x_ticks as string[]).every((tick) => !Number.isNaN(Date.parse(tick)))).toBe(true);
  });

  it('a scatter chart: one element per dataset with its points', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'plt.scatter([1, 2, 3], [4, 5, 6], label="Dataset 1")',
          'plt.scatter([0.5], [7], label="Dataset 2")',
          'plt.xlabel("A")',
          'plt.ylabel("B")',
          'plt.grid(True)',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toMatchObject({
      type: 'scatter',
      title: null,
      x_label: 'A',
      y_label: 'B',
      x_scale: 'linear',
      elements: [
        {
          label: 'Dataset 1',
          points: [
            [1, 4],
            [2, 5],
            [3, 6],
          ],
        },
        { label: 'Dataset 2', points: [[0.5, 7]] },
      ],
    });
  });

  it('a bar chart: each bar with its category, its series and its height', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'plt.bar(["Author A", "Author B", "Author C"], [100, 200, 300], label="Books Sold")',
          'plt.xlabel("Authors")',
          'plt.ylabel("Number of Books Sold")',
          'plt.title("Book Sales by Authors")',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toEqual({
      type: 'bar',
      title: 'Book Sales by Authors',
      x_label: 'Authors',
      y_label: 'Number of Books Sold',
      x_unit: null,
      y_unit: null,
      elements: [
        { label: 'Author A', group: 'Books Sold', value: 100 },
        { label: 'Author B', group: 'Books Sold', value: 200 },
        { label: 'Author C', group: 'Books Sold', value: 300 },
      ],
    });
  });

  it('a pie chart: each wedge with its label, angle in degrees and radius', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'fig, ax = plt.subplots()',
          'ax.pie([90, 10], labels=["No", "No, in blue"], autopct="%1.1f%%", startangle=90)',
          'ax.set_title("Will I wake up early tomorrow?")',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toEqual({
      type: 'pie',
      title: 'Will I wake up early tomorrow?',
      elements: [
        { label: 'No', angle: 324, radius: 1 },
        { label: 'No, in blue', angle: 36, radius: 1 },
      ],
    });
  });

  it('a box and whisker chart: the five numbers and the outliers of each box', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'fig, ax = plt.subplots()',
          'ax.boxplot([[1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 12, 14, 16, 18, 60]])',
          // tick_labels= (matplotlib 3.9) or labels= (before) would tie the test to a version.
          'ax.set_xticks([1, 2], ["Class A", "Class B"])',
          'ax.set_xlabel("Class")',
          'ax.set_ylabel("Score (points)")',
          'ax.set_title("Exam Scores")',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toEqual({
      type: 'box_and_whisker',
      title: 'Exam Scores',
      x_label: 'Class',
      y_label: 'Score (points)',
      x_unit: null,
      y_unit: 'points',
      elements: [
        { label: 'Class A', min: 1, first_quartile: 3, median: 5, third_quartile: 7, max: 9, outliers: [] },
        { label: 'Class B', min: 10, first_quartile: 12.5, median: 15, third_quartile: 17.5, max: 18, outliers: [60] },
      ],
    });
  });

  it('a figure of two axes: a superchart with the chart of each', async () => {
    const chart = chartOf(
      await sandbox.runCode(
        [
          'fig, axs = plt.subplots(1, 2)',
          'fig.suptitle("Multiple Charts Example")',
          'axs[0].plot([1, 2, 3], [2, 4, 6])',
          'axs[0].set_title("Line")',
          'axs[1].bar(["a", "b"], [5, 7])',
          'axs[1].set_title("Bars")',
          'plt.show()',
        ].join('\n'),
      ),
    );
    expect(chart).toMatchObject({
      type: 'superchart',
      title: 'Multiple Charts Example',
      elements: [
        {
          type: 'line',
          title: 'Line',
          elements: [
            {
              label: 'Line 0',
              points: [
                [1, 2],
                [2, 4],
                [3, 6],
              ],
            },
          ],
        },
        {
          type: 'bar',
          title: 'Bars',
          elements: [
            { label: 'a', group: 'Group 0', value: 5 },
            { label: 'b', group: 'Group 0', value: 7 },
          ],
        },
      ],
    });
    expect(chart.elements).toHaveLength(2);
  });

  it('a figure the extractor cannot read: the PNG as before, no chart, no error, nothing on stderr', async () => {
    // An artist that refuses to give its data back, though it draws.
    const execution = await sandbox.runCode(
      [
        'from matplotlib.lines import Line2D',
        'class Unreadable(Line2D):',
        '    def get_xydata(self):',
        '        raise RuntimeError("not telling")',
        'fig, ax = plt.subplots()',
        'ax.add_line(Unreadable([0, 1, 2], [0, 1, 0]))',
        'ax.autoscale_view()',
        'plt.show()',
      ].join('\n'),
    );
    const figure = figureResult(execution);
    expect(figure.chart).toBeUndefined();
    expect(Buffer.from(figure.png!, 'base64').subarray(1, 4).toString()).toBe('PNG');
    expect(execution.logs.stdout).toEqual([]);
  });

  it('a figure past the bound on points: the PNG, no chart', async () => {
    const figure = figureResult(await sandbox.runCode('plt.plot(range(100_001))\nplt.show()'));
    expect(figure.chart).toBeUndefined();
    expect(figure.png).toBeDefined();
  });

  it('no chart field on results that are not figures', async () => {
    const execution = await sandbox.runCode('1 + 1');
    expect(execution.results[0]!.chart).toBeUndefined();
    expect(execution.results[0]!.text).toBe('2');
  });
});
