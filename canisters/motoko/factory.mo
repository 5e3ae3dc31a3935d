// Creates Child canisters through the management canister and calls them.
import Prim "mo:⛔";
import Lib "child";

persistent actor Factory {
  var children : [Lib.Child] = [];

  public func spawn(start : Nat) : async Nat {
    let child = await (with cycles = 1_000_000_000_000) Lib.Child(start);
    children := Prim.Array_tabulate<Lib.Child>(children.size() + 1, func i { if (i < children.size()) children[i] else child });
    await child.inc()
  };

  public func bump_all() : async Nat {
    var total = 0;
    for (child in children.vals()) { total += await child.inc() };
    total
  };

  public query func count() : async Nat { children.size() };
};
