import type { FileHandle } from 'node:fs/promises';

// Port of k8s.io/cri-client v0.33.13 pkg/logs/tail.go findTailLineStartIndex: scan backwards from the end in
// blocks, so `tailLines=10` on a 100 MiB log reads a few KiB. The result does not depend on the block size.

const TAIL_BLOCK_BYTES = 4096;
const NEWLINE = 0x0a;

/**
 * The offset where the `lines`-th last line starts; 0 without a tail or when the file has fewer lines. An
 * incomplete last line (no newline yet) is not counted, so `lines = 0` starts at it.
 */
export async function findTailStart(file: FileHandle, lines: number | undefined, counter: { bytesRead: number }): Promise<number> {
  if (lines === undefined) return 0;
  const { size } = await file.stat();
  let left = size;
  let count = 0;
  let block = Buffer.alloc(0);
  for (let right = size; right > 0 && count <= lines; right = left) {
    left = Math.max(0, right - TAIL_BLOCK_BYTES);
    block = Buffer.allocUnsafe(right - left);
    const { bytesRead } = await file.read(block, 0, block.length, left);
    counter.bytesRead += bytesRead;
    block = block.subarray(0, bytesRead);
    count += countNewlines(block);
  }
  // The last block read holds the newline after which the wanted line starts.
  let offset = 0;
  for (; count > lines; count--) offset = block.indexOf(NEWLINE, offset) + 1;
  return left + offset;
}

function countNewlines(block: Buffer): number {
  let n = 0;
  for (let i = block.indexOf(NEWLINE); i >= 0; i = block.indexOf(NEWLINE, i + 1)) n++;
  return n;
}
