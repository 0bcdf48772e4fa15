import { runServiceMain } from '@cmc/service';
import { notificationService } from './app';

runServiceMain(notificationService);
