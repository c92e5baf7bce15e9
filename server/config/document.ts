import { GROUP_TITLES, LAUNCHER_SETTINGS, SETTINGS, settingsOf, type Group, type Setting } from './settings.js';

/** A markdown table cell: a `|` inside would end it. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function defaultOf(setting: Setting<unknown>): string {
  if (setting.defaultText !== undefined) return setting.defaultText;
  if (typeof setting.default === 'string') return `\`${setting.default}\``;
  return 'unset';
}

function table(rows: readonly { env: string; defaultText: string; doc: string }[]): string {
  const lines = ['| variable | default | meaning |', '| --- | --- | --- |'];
  for (const row of rows) lines.push(`| \`${row.env}\` | ${cell(row.defaultText)} | ${cell(row.doc)} |`);
  return lines.join('\n');
}

/** docs/configuration.md, as `npm run docs` writes it: the settings table, rendered. */
export function configurationDoc(): string {
  const groups = (Object.keys(SETTINGS) as Group[]).map((group) => {
    const settings = settingsOf(group);
    const rows = settings.map((setting) => ({ env: setting.env, defaultText: defaultOf(setting), doc: setting.doc }));
    return `## ${GROUP_TITLES[group]}\n\n${table(rows)}\n`;
  });
  return `<!-- Generated from server/config/settings.ts by \`npm run docs\`: edit the settings there. -->

# Configuration

Everything comes from the environment and is checked at start-up: a bad value stops the
server with a message naming the variable. Durations (\`INTERRUPT_GRACE\`, \`KEEPALIVE_INTERVAL\`,
\`MCP_SESSION_IDLE\`, \`REQUEST_TIMEOUT\`, \`SHUTDOWN_GRACE\`) are seconds, fractions allowed: a
positive value below a millisecond counts as one (never as \`0\`, which turns some of them off),
and a value past what a timer holds (2147483 s, about 24.8 days; 2147478 s for
\`SHUTDOWN_GRACE\`) stops the server rather than firing at once. Sizes take \`KiB\`, \`MiB\`,
\`GiB\`, \`KB\`, ... (\`64MiB\`, \`2GiB\`).

${groups.join('\n')}
## Read by start-up.sh

\`start-up.sh\` reads these besides the API's own; the API does not.

${table(LAUNCHER_SETTINGS)}

\`start-up.sh\` also reads \`IPYTHONDIR\`. Run as root with the users above, it hands the API
\`KERNEL_IDS\`. None of the variables on this page reaches the kernels (\`start-up.sh\` starts
Jupyter without them; \`tests/unit/start-up-env.test.ts\` checks the list).
\`npm start\` and \`npm test\` read \`SYSTEM_PACKAGES\`: \`skip\` leaves the Debian packages unchecked,
for a machine whose Jupyter comes from elsewhere (point \`JUPYTER_PYTHON\` at it).

## Logs

Logs are JSON lines (pino) on stdout, with a request id (\`x-request-id\` is honoured). Code,
environment variable values, tokens and query parameter values (but the API's own) are never logged. Lines
are written synchronously: a closed stdout (a log reader that went away) loses the log but
never keeps the server from stopping.
`;
}
