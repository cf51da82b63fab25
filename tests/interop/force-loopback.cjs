// Preloaded (`node --require`) into a reference server that binds every interface: its servers
// listen on 127.0.0.1 only, so a test never opens a port to the network.
const net = require("node:net");

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && typeof args[0] === "object" && args[0] !== null) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (args.length > 0 && /^\d+$/.test(String(args[0]))) {
    const callbacks = args.slice(1).filter((a) => typeof a === "function");
    args = [Number(args[0]), "127.0.0.1", ...callbacks];
  }
  return listen.apply(this, args);
};
