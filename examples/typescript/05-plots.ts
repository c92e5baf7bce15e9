// Plots: a matplotlib figure comes back as a PNG image with the result.
//
//   npx tsx examples/typescript/05-plots.ts        # writes sine.png
import { writeFile } from 'node:fs/promises';
import { ExecutionClient, ExecutionContainer } from 'code-interpreter-client';

const tag = process.env.CODE_INTERPRETER_IMAGE ?? 'code-interpreter';
await using container = await new ExecutionContainer({ tag }).run();
await using client = await new ExecutionClient({
  host: container.host,
  port: container.executorPort,
  accessToken: container.accessToken,
}).connect();

const code = `
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 10, 100)
plt.figure(figsize=(8, 6))
plt.plot(x, np.sin(x))
plt.title("Sine Wave")
plt.show()

print("Plot generation complete!")
`;

const execution = client.submit(code);
for await (const chunk of execution.stream()) process.stdout.write(chunk);
const result = await execution.result();
// Images are not part of the text: they come as PNG bytes, one per figure shown.
await writeFile('sine.png', result.images[0]!);
console.log(`Saved sine.png (${result.images.length} image, ${result.images[0]!.length} bytes)`);
