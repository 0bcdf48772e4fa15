import { runServiceMain } from '@cmc/service';
import { consentService } from './app';

runServiceMain(consentService);
