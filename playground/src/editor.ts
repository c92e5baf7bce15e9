import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { bracketMatching, defaultHighlightStyle, indentOnInput, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import { r } from '@codemirror/legacy-modes/mode/r';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView, keymap, lineNumbers } from '@codemirror/view';

function mode(language: string): Extension {
  switch (language) {
    case 'python':
      return python();
    case 'javascript':
      return javascript();
    case 'typescript':
      return javascript({ typescript: true });
    case 'r':
      return StreamLanguage.define(r);
    case 'bash':
      return StreamLanguage.define(shell);
    default:
      return [];
  }
}

export interface CodeEditor {
  view: EditorView;
  setLanguage(language: string): void;
}

export function createEditor(parent: HTMLElement, language: string, run: () => void): CodeEditor {
  const languageSlot = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: '',
      extensions: [
        // Before the default keymap, which would insert a newline.
        keymap.of([
          {
            key: 'Shift-Enter',
            run: () => {
              run();
              return true;
            },
          },
        ]),
        lineNumbers(),
        history(),
        indentOnInput(),
        bracketMatching(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        languageSlot.of(mode(language)),
        EditorView.contentAttributes.of({ 'aria-label': 'Code', 'aria-multiline': 'true', role: 'textbox' }),
      ],
    }),
  });
  return { view, setLanguage: (next) => view.dispatch({ effects: languageSlot.reconfigure(mode(next)) }) };
}
