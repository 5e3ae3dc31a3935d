// Calls Callee with `await`: the state changed before each await commits
// on its own, a trap in the callee comes back as an error to catch, and
// the reply goes to the ingress caller after several awaits.
import Prim "mo:⛔";

persistent actor Caller {
  type Callee = actor { ping : Nat -> async Nat; boom : () -> async Nat };
  var before : Nat = 0;
  var after : Nat = 0;

  public func ping_twice(callee : Text, x : Nat) : async Nat {
    let c : Callee = actor (callee);
    before += 1;
    let y = await c.ping(x);
    let z = await c.ping(y);
    after += 1;
    z
  };

  public func catch_boom(callee : Text) : async Text {
    let c : Callee = actor (callee);
    try {
      ignore await c.boom();
      "no error"
    } catch (e) {
      Prim.errorMessage(e)
    }
  };

  public query func counts() : async (Nat, Nat) { (before, after) };
};
