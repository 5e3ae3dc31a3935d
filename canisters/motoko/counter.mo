// A persistent counter: its heap survives upgrades (enhanced orthogonal
// persistence), so `count` needs no stable-memory code.
persistent actor Counter {
  var count : Nat = 0;
  var upgrades : Nat = 0;

  public func inc() : async Nat { count += 1; count };
  public query func get() : async Nat { count };
  public query func upgraded() : async Nat { upgrades };

  system func postupgrade() { upgrades += 1 };
};
