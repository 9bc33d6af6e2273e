// vpcgw on both gateways, for every proposal set; the site gateway initiates (startAction: start).
import { defineS2cScenario, PROPOSAL_SETS } from '../helpers/scenario.js';

for (const proposals of PROPOSAL_SETS) {
  defineS2cScenario({ site: 'vpcgw', cloud: 'vpcgw', initiator: 'site', proposals });
}
