import { runServiceMain } from '@cmc/service';
import { identityService } from './app';

runServiceMain(identityService);
