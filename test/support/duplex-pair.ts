import { Duplex } from 'node:stream';

/**
 * Two Duplexes joined back to back, what one writes the other reads (Node 20 has no stream.duplexPair). An end
 * is passed on as an end; destroying one side destroys the other, as a closed socket would.
 */
export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const side = (other: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk, _enc, done) {
        other().push(chunk);
        done();
      },
      final(done) {
        other().push(null);
        done();
      },
      destroy(err, done) {
        const peer = other();
        if (!peer.destroyed) peer.destroy();
        done(err);
      },
    });
  sides.push(
    side(() => sides[1]!),
    side(() => sides[0]!),
  );
  return [sides[0]!, sides[1]!];
}
