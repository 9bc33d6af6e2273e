// strongSwan <-> strongSwan through the shared s2c scenario, for every proposal set the vpcgw
// scenarios use: proves the proposal strings, the topology and the checks themselves, so a
// failing vpcgw scenario points at vpcgw and not at the harness.
import { defineS2cScenario, PROPOSAL_SETS } from '../helpers/scenario.js';

for (const proposals of PROPOSAL_SETS) {
  defineS2cScenario({ site: 'strongswan', cloud: 'strongswan', initiator: 'site', proposals, iperfSeconds: 2 });
}
