import { runServiceMain } from '@cmc/service';
import { auditService } from './app';

runServiceMain(auditService);
