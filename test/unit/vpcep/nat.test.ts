import { PolicyStage } from '../../../src/vpcep/nat.js';
import { policyScenarios } from '../../helpers/policy-scenarios.js';

policyScenarios('PolicyStage (TypeScript)', () => new PolicyStage());
