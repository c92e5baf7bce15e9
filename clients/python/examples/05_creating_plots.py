"""Plots: a matplotlib figure comes back as an image with the result.

    python3 05_creating_plots.py        # writes sine.png

Images are PIL images when Pillow is installed (`pip install ./clients/python[images]`), PNG
bytes otherwise.
"""

import asyncio
import os
import sys

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")

CODE = """
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 10, 100)
plt.figure(figsize=(8, 6))
plt.plot(x, np.sin(x))
plt.title("Sine Wave")
plt.show()

print("Plot generation complete!")
"""


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        async with ExecutionClient(
            port=container.executor_port, host=container.host, access_token=container.access_token
        ) as client:
            execution = await client.submit(CODE)
            async for chunk in execution.stream():
                sys.stdout.write(chunk)
            result = await execution.result()

    # Images are not part of the text: one per figure shown.
    image = result.images[0]
    if isinstance(image, bytes):
        with open("sine.png", "wb") as file:
            file.write(image)
        print(f"Saved sine.png ({len(result.images)} image, PNG bytes)")
    else:
        image.save("sine.png")
        print(f"Saved sine.png ({len(result.images)} image, {image.width}x{image.height} PIL image)")


if __name__ == "__main__":
    asyncio.run(main())
