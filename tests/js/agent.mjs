// agent-js against `canister-host serve`: usage
// `node agent.mjs URL COUNTER_ID SYSAPI_ID` (the C counter and sysapi canisters).
// Prints one JSON object; host/cli/tests/agent_js.rs checks it. Every agent
// keeps agent-js's defaults: certificates are verified against the fetched
// root key, and query responses against the node keys in the state tree.
import { Actor, CanisterStatus, Certificate, HttpAgent, lookupResultToBuffer } from '@dfinity/agent';
import { Ed25519KeyIdentity } from '@dfinity/identity';
import { Secp256k1KeyIdentity } from '@dfinity/identity-secp256k1';
import { Principal } from '@dfinity/principal';

const [url, id, sysapiId] = process.argv.slice(2);
const canisterId = Principal.fromText(id);
const counterIdl = ({ IDL }) =>
  IDL.Service({ inc: IDL.Func([], [IDL.Nat64], []), get: IDL.Func([], [IDL.Nat64], ['query']) });
const toHex = (bytes) => Buffer.from(bytes).toString('hex');

const out = { counters: [] };
const identities = [
  ['ed25519', Ed25519KeyIdentity.generate(new Uint8Array(32).fill(7))],
  ['secp256k1', Secp256k1KeyIdentity.generate(new Uint8Array(32).fill(9))],
];
for (const [kind, identity] of identities) {
  const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
  const counter = Actor.createActor(counterIdl, { agent, canisterId });
  const inc = await counter.inc();
  const get = await counter.get();
  out.counters.push({ kind, sender: identity.getPrincipal().toText(), inc: inc.toString(), get: get.toString() });
}

// The management canister, as the canister's controller (the anonymous
// principal created it), routed by the effective canister id.
const anonymous = await HttpAgent.create({ host: url, shouldFetchRootKey: true });
const management = Actor.createActor(
  ({ IDL }) =>
    IDL.Service({
      canister_status: IDL.Func(
        [IDL.Record({ canister_id: IDL.Principal })],
        [
          IDL.Record({
            status: IDL.Variant({ running: IDL.Null, stopping: IDL.Null, stopped: IDL.Null }),
            module_hash: IDL.Opt(IDL.Vec(IDL.Nat8)),
          }),
        ],
        [],
      ),
    }),
  { agent: anonymous, canisterId: Principal.managementCanister(), effectiveCanisterId: canisterId },
);
const status = await management.canister_status({ canister_id: canisterId });
out.status = Object.keys(status.status)[0];
out.status_module_hash = toHex(status.module_hash[0]);

// Certified facts from the state tree.
const facts = await CanisterStatus.request({ agent: anonymous, canisterId, paths: ['module_hash', 'controllers', 'time'] });
out.module_hash = facts.get('module_hash');
out.controllers = facts.get('controllers').map((p) => p.toText());
out.time_ms = Number(facts.get('time').getTime());
// A certified variable: the canister sets its certified data in an update;
// a query returns the data certificate, which must verify against the root
// key and hold that data.
const sysapi = Actor.createActor(
  ({ IDL }) =>
    IDL.Service({
      set_certified_data: IDL.Func([IDL.Vec(IDL.Nat8)], [], []),
      certificate: IDL.Func([], [IDL.Vec(IDL.Nat8)], ['query']),
    }),
  { agent: anonymous, canisterId: Principal.fromText(sysapiId) },
);
await sysapi.set_certified_data(new Uint8Array(32).fill(0x2a));
const certificate = await Certificate.create({
  certificate: Uint8Array.from(await sysapi.certificate()),
  rootKey: anonymous.rootKey,
  canisterId: Principal.fromText(sysapiId),
});
const path = ['canister', Principal.fromText(sysapiId).toUint8Array(), 'certified_data'];
out.certified_data = toHex(lookupResultToBuffer(certificate.lookup_path(path)));
console.log(JSON.stringify(out));
