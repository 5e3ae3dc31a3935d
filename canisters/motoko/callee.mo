// The other end of Caller's calls: a method that answers, one that traps
// after changing state (the change is rolled back), and a counter of the
// calls that got through.
persistent actor Callee {
  var pings : Nat = 0;
  var lost : Nat = 0;

  public func ping(x : Nat) : async Nat { pings += 1; x + 1 };
  public func boom() : async Nat { lost += 1; assert false; 0 };
  public query func count() : async (Nat, Nat) { (pings, lost) };
};
