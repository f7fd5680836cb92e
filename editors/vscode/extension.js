// Starts `rks lsp` (the command in the `rks.server.command` setting) for .rks files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("rks").get("server.command");
  client = new LanguageClient(
    "rks",
    "Rankitect language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "rks" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
