# Admission limits (docs/limits.md): endpoint fields and per-principal overrides.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('resource_server_async', '0004_apikey_operator'),
    ]

    operations = [
        migrations.AddField(
            model_name='endpoint',
            name='max_concurrent_user',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='rpm_model',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='rpm_user',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.CreateModel(
            name='LimitOverride',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('globus_group', models.CharField(blank=True, default='', help_text='a Globus group id (or leave empty)', max_length=64)),
                ('rpm_user', models.PositiveIntegerField(blank=True, help_text='requests per minute on each endpoint; 0 = unlimited', null=True)),
                ('tpm_user', models.PositiveIntegerField(blank=True, help_text='tokens per minute on each endpoint; 0 = unlimited', null=True)),
                ('max_concurrent_user', models.PositiveIntegerField(blank=True, help_text='requests in flight on each endpoint; 0 = unlimited', null=True)),
                ('note', models.CharField(blank=True, default='', max_length=250)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('api_key', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='limits', to='resource_server_async.apikey')),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('globus_group', ''), _negated=True), fields=('globus_group',), name='limit_override_group_unique'), models.CheckConstraint(condition=models.Q(models.Q(('api_key__isnull', False), ('globus_group', '')), models.Q(('api_key__isnull', True), models.Q(('globus_group', ''), _negated=True)), _connector='OR'), name='limit_override_one_subject')],
            },
        ),
    ]
