// Peer server for huddle-bench: the minimal idiomatic socket.io 4.8 server with
// the behaviour the scenarios need. Namespace `/`, default settings.
//   join (ack)          -> joins room `bench`, acks {ok: true}
//   broadcast (payload) -> io.to('bench').emit('broadcast', payload)
//   echo (...args, ack) -> ack(...args)
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 3000);
const httpServer = createServer();
const io = new Server(httpServer);

io.on('connection', (socket) => {
  socket.on('join', (...args) => {
    socket.join('bench');
    const ack = args.pop();
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('broadcast', (payload) => {
    io.to('bench').emit('broadcast', payload);
  });
  socket.on('echo', (...args) => {
    const ack = args.pop();
    if (typeof ack === 'function') ack(...args);
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  console.log(`listening ${httpServer.address().port}`);
});

const stop = () => io.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
