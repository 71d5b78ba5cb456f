'use strict';
// The seed's own design, kept as the speed baseline for the Go intake:
// node:http + ioredis, answer Strava's subscription challenge, LPUSH the raw
// body of activity create/delete events to one Redis list, 200 otherwise.
// No validation beyond JSON.parse, no dedupe, no subscription check.
//
// env: PORT (default 3000), HOST (default 127.0.0.1),
//      REDIS_URL (default redis://127.0.0.1:6379/15),
//      QUEUE_KEY (default stravahook-seed:events), STRAVA_VERIFY_TOKEN.

const http = require('node:http');
const Redis = require('ioredis');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || '127.0.0.1';
const queueKey = process.env.QUEUE_KEY || 'stravahook-seed:events';
const verifyToken = process.env.STRAVA_VERIFY_TOKEN || '';
const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379/15');
redis.on('error', (err) => console.error('redis:', err.message));

const maxBody = 64 * 1024;

function send(res, status, body, type) {
  res.writeHead(status, { 'Content-Type': type || 'text/plain; charset=utf-8' });
  res.end(body);
}

function challenge(req, res, url) {
  const q = url.searchParams;
  if (q.get('hub.mode') !== 'subscribe' || !q.has('hub.challenge')) {
    return send(res, 400, 'bad request\n');
  }
  if (q.get('hub.verify_token') !== verifyToken) {
    return send(res, 403, 'forbidden\n');
  }
  send(res, 200, JSON.stringify({ 'hub.challenge': q.get('hub.challenge') }), 'application/json');
}

function event(req, res) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > maxBody) {
      send(res, 413, 'too large\n');
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (res.writableEnded) return;
    const raw = Buffer.concat(chunks).toString('utf8');
    let ev;
    try {
      ev = JSON.parse(raw);
    } catch {
      return send(res, 400, 'bad json\n');
    }
    if (ev && (ev.aspect_type === 'create' || ev.aspect_type === 'delete')) {
      redis.lpush(queueKey, raw).then(
        () => send(res, 200, 'ok\n'),
        (err) => {
          console.error('lpush:', err.message);
          send(res, 503, 'queue unavailable\n');
        },
      );
      return;
    }
    send(res, 200, 'ignored\n');
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== '/api/activity_update') return send(res, 404, 'not found\n');
  if (req.method === 'GET') return challenge(req, res, url);
  if (req.method === 'POST') return event(req, res);
  res.setHeader('Allow', 'GET, POST');
  send(res, 405, 'method not allowed\n');
});

server.listen(port, host, () => console.error(`node-seed listening on http://${host}:${port}`));

function shutdown() {
  server.close();
  redis.quit().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
