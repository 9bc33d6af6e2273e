// vpcgw on both gateways, for every proposal set; the site gateway initiates (startAction: start).
import { defineS2cScenario, PROPOSAL_SETS } from '../helpers/scenario.js';

for (const proposals of PROPOSAL_SETS) {
  defineS2cScenario({ site: 'vpcgw', cloud: 'vpcgw', initiator: 'site', proposals });
}

// 64-bit extended sequence numbers (RFC 4303 §2.2.1): only between two vpcgw, since strongSwan's
// kernel-libipsec has no ESN. Offered alone on both sides, so it is what gets negotiated.
defineS2cScenario({
  site: 'vpcgw',
  cloud: 'vpcgw',
  initiator: 'site',
  proposals: {
    ike: 'aes128gcm16-prfsha256-x25519',
    esp: 'aes128gcm16-esn',
    expect: { ikeEncr: 'AES_GCM_16', ikeKeySize: 128, ikePrf: 'PRF_HMAC_SHA2_256', dhGroup: 'CURVE_25519', espEncr: 'AES_GCM_16', espKeySize: 128, espInteg: undefined },
    vpcgwChild: 'AES_GCM_16_128/EXT_SEQ',
  },
});
