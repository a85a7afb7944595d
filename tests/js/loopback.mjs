// Preloaded into the unmodified MCP server (`node --import ./loopback.mjs …/server-everything/dist/index.js
// streamableHttp`). The server calls `app.listen(PORT)`, which binds every interface; the end-to-end tests start
// every process on 127.0.0.1 only, so a listen() given a port and no host gets 127.0.0.1. Nothing else changes.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const isPort = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (isPort && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
