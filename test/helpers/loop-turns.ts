// Turns of the event loop, counted by a setImmediate that queues itself again each turn: a test
// sees whether work it runs gives the loop back, and between which steps.

/** A counter of the event loop's turns, from its making until `stop()`. */
export interface LoopTurns {
  /** Turns counted so far. */
  readonly turns: number;
  stop(): void;
}

export function countLoopTurns(): LoopTurns {
  let turns = 0;
  let counting = true;
  const count = (): void => {
    turns++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  return {
    get turns() {
      return turns;
    },
    stop() {
      counting = false;
    },
  };
}
