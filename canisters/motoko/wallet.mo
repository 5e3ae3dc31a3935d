// Cycles between canisters: `send` attaches cycles to a call of another
// wallet's `receive`, which accepts half; the rest comes back as a refund.
import Prim "mo:⛔";

persistent actor Wallet {
  type Wallet = actor { receive : () -> async Nat };
  var received : Nat = 0;

  public func send(to : Text, amount : Nat) : async (Nat, Nat) {
    let other : Wallet = actor (to);
    let accepted = await (with cycles = amount) other.receive();
    (accepted, Prim.cyclesRefunded())
  };

  public func receive() : async Nat {
    let available = Prim.cyclesAvailable();
    let accepted = Prim.cyclesAccept<system>(available / 2);
    received += accepted;
    accepted
  };

  public query func total_received() : async Nat { received };
};
