import { ServerTCP } from 'modbus-serial';
import { onTestFinished } from 'vitest';

export interface Registers {
  holding: number[];
  coils: boolean[];
}

/** A real Modbus TCP server whose registers are `regs`. */
export async function startModbusServer(port: number, regs: Registers): Promise<{ stop(): Promise<void>; connections(): number }> {
  const server = new ServerTCP(
    {
      getHoldingRegister: (addr: number) => regs.holding[addr] ?? 0,
      setRegister: (addr: number, value: number) => void (regs.holding[addr] = value),
      getCoil: (addr: number) => regs.coils[addr] ?? false,
      setCoil: (addr: number, value: boolean) => void (regs.coils[addr] = value),
    },
    { host: '127.0.0.1', port },
  );
  await new Promise<void>((resolve, reject) => server.once('initialized', () => resolve()).once('serverError', reject));
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= new Promise<void>((resolve) => server.close(() => resolve())));
  onTestFinished(stop);
  return { stop, connections: () => server.socks.size };
}
