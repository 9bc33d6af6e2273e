// vpcgw on the cloud gateway against real strongSwan 5.9.8 (kernel-libipsec) on the site gateway,
// for every proposal set: vpcgw as responder (strongSwan initiates) and as initiator
// (startAction: start). Each scenario checks SA state, mirrored SPIs (swanctl --list-sas against
// vpcgw status --json), ping both ways, an iperf3 TCP run and a clean SIGTERM exit.
import { defineS2cScenario, PROPOSAL_SETS } from '../helpers/scenario.js';

for (const proposals of PROPOSAL_SETS) {
  defineS2cScenario({ site: 'strongswan', cloud: 'vpcgw', initiator: 'site', proposals });
  defineS2cScenario({ site: 'strongswan', cloud: 'vpcgw', initiator: 'cloud', proposals });
}
