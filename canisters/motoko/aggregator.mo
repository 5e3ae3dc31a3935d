// Composite queries: sums the `get` queries of other canisters, and calls
// itself down a chain (to reach the IC's depth limit).
import Prim "mo:⛔";

persistent actor Aggregator {
  type Counter = actor { get : shared query () -> async Nat };
  type Self = actor { nest : shared composite query (Text, Nat) -> async Nat };

  public composite query func total(ids : [Text]) : async Nat {
    var sum = 0;
    for (id in ids.vals()) {
      let counter : Counter = actor (id);
      sum += await counter.get();
    };
    sum
  };

  public composite query func total_or_error(ids : [Text]) : async Text {
    try {
      let n = await total(ids);
      "total " # debug_show n
    } catch (e) {
      Prim.errorMessage(e)
    }
  };

  public composite query func nest(self : Text, n : Nat) : async Nat {
    if (n == 0) { return 0 };
    let me : Self = actor (self);
    1 + (await me.nest(self, n - 1))
  };
};
