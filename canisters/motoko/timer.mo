// A recurring timer: every second of the host's time it counts a tick.
import Prim "mo:⛔";

persistent actor Ticker {
  var ticks : Nat = 0;

  func tick() : async () { ticks += 1 };

  transient let _timer = Prim.setTimer<system>(1_000_000_000, true, tick);

  public query func get() : async Nat { ticks };
};
