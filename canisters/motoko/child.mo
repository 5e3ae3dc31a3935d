// An actor class: Factory creates instances of it through the management
// canister (create_canister, then install_code of this module).
persistent actor class Child(start : Nat) {
  var count : Nat = start;
  public func inc() : async Nat { count += 1; count };
};
