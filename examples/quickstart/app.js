// The quick-start app of FinalPM's README: an HTTP server that tells
// final-pm when it is ready and stops gracefully when asked.
const http = require('http');

const server = http.createServer((req, res) => {
  res.end(`hello from ${process.pid}\n`);
});

// PORT lets several copies of the example run side by side (the tests do).
server.listen(Number(process.env.PORT) || 3334, () => {
  if (process.send) process.send('ready');
});

function stop() {
  server.close(() => process.exit(0));
}
process.on('SIGINT', stop);
process.on('message', (msg) => {
  if (msg === 'stop') stop();
});
